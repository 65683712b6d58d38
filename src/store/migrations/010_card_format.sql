-- A card opens only in the Wiegand format it was enrolled in (issue 14:
-- a 26-bit card's numbers were accepted in a 34- or 37-bit frame). Cards
-- assigned without --format got the smallest format that fits, which their
-- reader may never send; so that they keep working, each formatted card
-- takes the format of its latest grant in the event log (its owner, its
-- masked number, the frame format the gate recorded in the event's detail).
-- Cards with no such grant keep their format.
UPDATE card SET format = (
    SELECT json_extract(e.detail, '$.format')
    FROM event e
    WHERE e.subject_id = card.person_id
      AND e.kind = 'access'
      AND e.result = 'granted'
      AND e.credential_kind IN ('card', 'card+face')
      AND json_valid(e.detail)
      AND json_extract(e.detail, '$.format') IN ('wiegand26', 'wiegand34', 'wiegand37')
      AND e.credential_masked =
          substr(card.card_key, 1, instr(card.card_key, ':'))
          || replace(hex(zeroblob(max(length(substr(card.card_key, instr(card.card_key, ':') + 1)) - 2, 0))), '00', '*')
          || substr(substr(card.card_key, instr(card.card_key, ':') + 1), -2)
    ORDER BY e.seq DESC
    LIMIT 1
)
WHERE card_key NOT LIKE 'raw:%'
  AND EXISTS (
    SELECT 1
    FROM event e
    WHERE e.subject_id = card.person_id
      AND e.kind = 'access'
      AND e.result = 'granted'
      AND e.credential_kind IN ('card', 'card+face')
      AND json_valid(e.detail)
      AND json_extract(e.detail, '$.format') IN ('wiegand26', 'wiegand34', 'wiegand37')
      AND e.credential_masked =
          substr(card.card_key, 1, instr(card.card_key, ':'))
          || replace(hex(zeroblob(max(length(substr(card.card_key, instr(card.card_key, ':') + 1)) - 2, 0))), '00', '*')
          || substr(substr(card.card_key, instr(card.card_key, ':') + 1), -2)
  );
