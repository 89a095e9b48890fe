"""The web app's routes, one module per resource (`jobs`, `console`, `figures`,
`trend`, `nodes`, `node_batch`, `accounts`, `users`, `usage`, `hosts`, `login`,
`metrics`, `pages`); `deps` holds what they share (who is asking, the database and
settings, the templates), `errors` how the app answers an error. `app.create_app`
includes them."""
