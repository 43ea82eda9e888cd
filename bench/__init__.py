"""HireMeter's benchmarks: `make bench`. Never collected by pytest; each figure is printed next to a baseline
measured in the same run, and written as JSON under bench/results/."""
