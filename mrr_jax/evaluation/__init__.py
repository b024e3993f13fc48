"""Running and scoring generators: the metric protocol, LPIPS, prediction, the one evaluation loop."""
