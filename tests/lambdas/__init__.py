"""End-to-end tests of the two Lambda handlers over HTTP (DynamoDB Local, moto, PostgreSQL)."""
