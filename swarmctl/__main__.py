from swarmctl.main import main

main()
