"""`python -m medqa.embedded_corpus`. Regenerate the embedded corpus: medqa.cli.embedded_corpus."""

from medqa.cli.embedded_corpus import main

if __name__ == "__main__":
    main()
