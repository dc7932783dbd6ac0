from vidmoji.cli import main

main()
