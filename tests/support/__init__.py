"""Test support shared by test packages and bench scripts (never imported by the product): a throwaway
PostgreSQL cluster (`postgres`), HTML table cells (`pages`), simulated crowds (`crowd`)."""
