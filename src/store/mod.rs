//! Storage: sqlx on SQLite (default) or PostgreSQL.
