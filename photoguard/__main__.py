from photoguard.cli.main import main

main()
