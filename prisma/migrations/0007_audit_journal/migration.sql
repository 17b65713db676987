-- Issue 7: the audit journal (src/audit/journal.ts). How far each broker's local write-ahead journal
-- has been shipped into "AuditEvent": moved in the same statement that inserts the events, so a journal
-- replayed after a crash skips exactly the events already in the database.
CREATE TABLE "AuditJournalCursor" (
    "journalId" TEXT NOT NULL,
    "shippedSeq" BIGINT NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AuditJournalCursor_pkey" PRIMARY KEY ("journalId")
);
