-- Standalone tables for the pgbench ceilings (bench/ceiling_*.sql), in schemas of their own so that the service's
-- tables, rows and locks stay out of them; bench/run points search_path at one schema or the other.
--
-- ceiling: the least the database can do for the rows. LIKE copies the column types, defaults, NOT NULL, primary
-- keys and indexes; EXCLUDING CONSTRAINTS leaves out the CHECK constraints, and LIKE never copies foreign keys.
CREATE SCHEMA ceiling;
CREATE TABLE ceiling.orders (LIKE public.orders INCLUDING ALL EXCLUDING CONSTRAINTS);
CREATE TABLE ceiling.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL EXCLUDING CONSTRAINTS);

-- ceiling_checked: the same with the CHECK constraints of `orders` and `idempotency_keys` (the address and merge
-- variable rules are SQL functions run for every row), for attribution: what those rules cost the ceiling.
CREATE SCHEMA ceiling_checked;
CREATE TABLE ceiling_checked.orders (LIKE public.orders INCLUDING ALL);
CREATE TABLE ceiling_checked.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL);
