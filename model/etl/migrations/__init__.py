"""Alembic history of the ETL database (a package so that a non-editable install ships it)."""
