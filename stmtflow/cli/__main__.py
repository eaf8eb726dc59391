from stmtflow.cli._main import main

main()
