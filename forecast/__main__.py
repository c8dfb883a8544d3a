"""``python -m forecast fit|validate|test|predict``: see ``forecast.cli``."""

from forecast.cli import main

if __name__ == "__main__":
    main()
