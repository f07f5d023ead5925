"""Demand: sales and inventory buckets per SKU, and the signals the rules read from them."""
