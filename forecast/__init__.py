"""forecast: stock price forecasting with an implicit ridge-regression layer, on PyTorch Lightning."""

__version__ = "0.1.0"
