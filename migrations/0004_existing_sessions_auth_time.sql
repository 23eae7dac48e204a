-- Sessions opened before assurance was recorded last proved a factor when they were opened, not
-- when this migration ran: otherwise every old session would count as freshly authenticated.
UPDATE "sessions" SET "auth_time" = "created_at";
