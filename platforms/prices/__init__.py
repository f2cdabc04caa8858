"""`platbench prices`: list prices read from the providers' official price sources into the dated price cache
(platforms/core/price_cache.py) that platforms/core/pricing.py prefers to the hand-typed prices.yaml entries.

One module per official source (aws_price_list, azure_retail_prices, cloud_billing_catalog, sql_list_prices,
cluster_presets), none of which knows a platform: each platform's prices.yaml says in its `refresh` rules which
source gives which of its entries and how to ask (refresh.py); cli.py is the typer app. Cloud SDKs are
imported inside the functions that call them."""
