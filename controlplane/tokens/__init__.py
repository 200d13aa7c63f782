"""Bearer tokens: who may call which route. See `store.py` for how tokens are kept and checked."""
