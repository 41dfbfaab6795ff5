-- The application's database on a real host: created once (psql's \gexec), then seeded once.
SELECT 'CREATE DATABASE app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app') \gexec
SELECT 'CREATE ROLE app LOGIN PASSWORD ''molecule-app-pw''' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') \gexec
\c app
SELECT 'created' WHERE NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'customers');
CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, name text);
CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, customer int REFERENCES customers, note text);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 300) g ON CONFLICT DO NOTHING;
INSERT INTO orders SELECT g, 1 + g % 300, md5(g::text) FROM generate_series(1, 1200) g ON CONFLICT DO NOTHING;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app;
