from platforms.cli import main

main()
