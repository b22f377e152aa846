from photoguard.cli import main
main()
