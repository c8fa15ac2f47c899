"""The report pages: one module per report building what its page shows from the
query rows, and the catalogue that lists them."""
