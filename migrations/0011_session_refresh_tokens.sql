ALTER TABLE "sessions" ADD COLUMN "refresh_generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "refresh_token_hash" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "refresh_rotated_at" timestamp with time zone;--> statement-breakpoint
-- Every refresh now updates its session's row. Room left in each page lets the new row version stay
-- in the page (a HOT update: no index entry written), which is what keeps a rotation to one row write.
ALTER TABLE "sessions" SET (fillfactor = 80);
