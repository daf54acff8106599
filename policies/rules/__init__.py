"""The built-in rules, one module per family; `policies.registry` lists them."""
