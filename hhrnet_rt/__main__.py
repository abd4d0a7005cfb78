from hhrnet_rt.cli import main

main()
