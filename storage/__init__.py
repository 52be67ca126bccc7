"""The SQL store: SQLAlchemy models (models.py), the engine and sessionmaker (db.py), encryption
of secrets at rest (crypto.py), erasure that reaches the database's files (erasure.py) and the
Alembic migrations (migrate.py, migrations/). There are no repositories: the services in
bot/services query the models with select() in a Session whose transaction their caller owns."""
