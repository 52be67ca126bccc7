"""The SQL store: models, repositories, encryption of secrets and migrations."""
