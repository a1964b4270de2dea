"""Money: what an attempt cost and what a local answer saved, in USD.

``price.py`` is the arithmetic (a ``Price`` per million input and output tokens, the cost of
an attempt, of a call, and the cost avoided); ``table.py`` reads litellm's bundled price table
from its JSON file, without importing litellm; ``book.py`` (``PriceBook``) gives each configured
model its price: the configuration's ``price_per_mtok`` first, then that table, read once in the
background. Imports neither grpc nor litellm nor redis.
"""
