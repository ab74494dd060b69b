"""Engine state per site: the registry split by site, snapshots, and the Faust table that keeps them."""
