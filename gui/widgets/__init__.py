"""Small widgets shared by the views: cards, setting editors, the token preview, the length histogram."""
