-- 0007_archive: keys of jobs archived (personactl archive): their rows are dropped, their keys
-- stay taken (a key is never submitted twice) and `show KEY` says where they went.
CREATE TABLE archived_keys (
  key         TEXT    PRIMARY KEY,
  state       TEXT    NOT NULL,  -- the final state it was archived in
  spec        TEXT    NOT NULL,  -- as stored, so a resubmitted key can say whether it changed
  archived_at INTEGER NOT NULL,
  file        TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
