from photoguard.cli.common import main

main()
