"""`python -m medqa.build_base`. Build the embedded base model: medqa.cli.build_base."""

from medqa.cli.build_base import main

if __name__ == "__main__":
    main()
