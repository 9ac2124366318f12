-- The row rules of orders and templates (addresses, merge variables, metadata) as PL/pgSQL functions, with the
-- same verdict for every value (tests/api/row_rules.rs).
--
-- Before, each rule was a SQL function that read the document's members with a subquery. PostgreSQL prepares a
-- CHECK constraint's expression anew for every INSERT or UPDATE, and with it parsed and planned each such body
-- again (and a SQL function simple enough to be inlined is parsed again too, to inline it): four checks per order
-- row cost more than writing the row. A PL/pgSQL function is compiled once per session and its expressions keep
-- their plans, so what each statement pays is the call. Measured with pgbench on the bench's 2-core machine, 32
-- clients, one INSERT of an order row: 1 286 rows/s with the SQL functions, 1 587 with inlinable SQL ones, 2 934
-- with these, 4 934 with no checks at all (BENCHMARKS.md).
--
-- The members are checked with jsonpath (`strict`, so that an array value is not unwrapped into its elements), the
-- address's unknown members by removing the known ones. PostgreSQL's regular expressions allow repetition counts
-- up to 255, so 501 characters are `.{250}.{250}.`; the `s` flag makes `.` and `[^...]` match a line break, as
-- `char_length` counts one. STRICT as before: a NULL document (a missing `sender`) passes its check.
--
-- On Citus the functions are objects Citus created on every worker with the tables that use them, and it sends
-- CREATE OR REPLACE FUNCTION to the workers too.

-- A postal address: the members of `Address` in src/domain/address.rs, with the same limits.
CREATE OR REPLACE FUNCTION order_intake_is_address(a jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN jsonb_typeof(a) = 'object'
        AND (a - ARRAY['name', 'company', 'street', 'house_number', 'postal_code', 'city', 'country']) = '{}'::jsonb
        AND COALESCE(jsonb_typeof(a -> 'name') = 'string' AND char_length(a ->> 'name') BETWEEN 1 AND 200
            AND (a -> 'company' IS NULL OR jsonb_typeof(a -> 'company') = 'null'
                 OR (jsonb_typeof(a -> 'company') = 'string' AND char_length(a ->> 'company') BETWEEN 1 AND 200))
            AND jsonb_typeof(a -> 'street') = 'string' AND char_length(a ->> 'street') BETWEEN 1 AND 200
            AND jsonb_typeof(a -> 'house_number') = 'string' AND char_length(a ->> 'house_number') BETWEEN 1 AND 20
            AND jsonb_typeof(a -> 'postal_code') = 'string' AND char_length(a ->> 'postal_code') BETWEEN 1 AND 20
            AND jsonb_typeof(a -> 'city') = 'string' AND char_length(a ->> 'city') BETWEEN 1 AND 100
            AND jsonb_typeof(a -> 'country') = 'string' AND (a ->> 'country') ~ '^[A-Z]{2}$', false);
END
$$;
-- Merge variables: a JSON object whose values are all strings.
CREATE OR REPLACE FUNCTION order_intake_is_string_map(m jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN jsonb_typeof(m) = 'object' AND NOT jsonb_path_exists(m, 'strict $.* ? (@.type() != "string")');
END
$$;
-- Metadata: at most 20 string values, keys of 1 to 40 characters without square brackets, values of at most 500
-- characters (20261129200001_metadata.sql).
CREATE OR REPLACE FUNCTION order_intake_is_metadata(m jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN jsonb_typeof(m) = 'object'
        AND jsonb_array_length(jsonb_path_query_array(m, 'strict $.keyvalue()')) <= 20
        AND NOT jsonb_path_exists(m, 'strict $.* ? (@.type() != "string")')
        AND NOT jsonb_path_exists(m, 'strict $.keyvalue() ? (!(@.key like_regex "^[^][]{1,40}$" flag "s"))')
        AND NOT jsonb_path_exists(m, 'strict $.* ? (@ like_regex "^.{250}.{250}." flag "s")');
END
$$;
