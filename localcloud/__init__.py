"""localcloud: the parts of Azure labimage uses, on one machine, for the demo and the tests."""
