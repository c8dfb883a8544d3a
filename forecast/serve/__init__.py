"""The forecast service (``forecast serve``): a checkpoint's forecasts over HTTP with LitServe. ``requests`` needs
no web framework; ``api`` needs the ``serve`` extra."""
