"""`devscale simulate`: recorded load replayed through the policy `check` uses, and its outcome."""
