from swarmlab.main import main

main()
