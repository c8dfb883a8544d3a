"""``python -m forecast COMMAND``: see :mod:`forecast.main`."""

from forecast.main import main

if __name__ == "__main__":
    main()
