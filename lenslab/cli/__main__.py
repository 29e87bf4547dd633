from lenslab.cli import main

main()
