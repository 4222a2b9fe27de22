CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"owner" text NOT NULL,
	"hash" "bytea" NOT NULL,
	"scopes" text NOT NULL,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"owner" text NOT NULL,
	"key" text NOT NULL,
	"fingerprint" text NOT NULL,
	"response" text NOT NULL,
	"created_at" bigint DEFAULT (extract(epoch from now()) * 1000)::bigint NOT NULL,
	CONSTRAINT "idempotency_keys_owner_key_pk" PRIMARY KEY("owner","key")
);
--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"owner" text NOT NULL,
	"title" text NOT NULL,
	"title_lower" text NOT NULL,
	"description" text,
	"priority" integer DEFAULT 1 NOT NULL,
	"due_date" text,
	"completed" boolean DEFAULT false NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"version" integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "api_keys_owner" ON "api_keys" USING btree ("owner");--> statement-breakpoint
CREATE INDEX "tasks_owner_created" ON "tasks" USING btree ("owner","created_at","id");--> statement-breakpoint
CREATE INDEX "tasks_owner_due" ON "tasks" USING btree ("owner","due_date","id");--> statement-breakpoint
CREATE INDEX "tasks_owner_priority" ON "tasks" USING btree ("owner","priority","id");