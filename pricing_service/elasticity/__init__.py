"""Price elasticity: the vectorised fit (``fit``), its input rows from the sales buckets
(``dataset``), and the refit that reads the store and writes the estimates (``refit``)."""
