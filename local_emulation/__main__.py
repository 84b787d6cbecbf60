from local_emulation.cli import main

main()
