"""art-explorer's library: the scene and its twin, the networks, training, predict's
search, explore, the data and references. The scripts at the repository's top call it."""
