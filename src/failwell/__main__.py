from failwell.cli.main import main

main()
