"""Training the networks, on one machine or scaled out."""
