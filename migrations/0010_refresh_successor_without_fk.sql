ALTER TABLE "refresh_tokens" DROP CONSTRAINT "refresh_tokens_successor_id_refresh_tokens_id_fk";
