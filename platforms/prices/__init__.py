"""`platbench prices`: list prices read from each provider's official price source into a dated cache
(platforms/prices/cache.py) that platforms/core/pricing.py prefers to the hand-typed prices.yaml entries.

One module per provider (aws, azure, gcp, databricks); refresh.py says which provider prices which
platform's SKUs; cli.py is the typer app. Cloud SDKs are imported inside the functions that call them."""
