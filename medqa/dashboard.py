"""`python -m medqa.dashboard`. Create the project's saved W&B workspace: medqa.cli.dashboard."""

from medqa.cli.dashboard import main

if __name__ == "__main__":
    main()
