-- A call's routes are marked end_status 'sending' in the transaction that ends the call; the outcomes
-- replace the mark. Marks left behind by a node that died in between are found here and sent again.
CREATE INDEX call_routes_ending ON call_routes (updated_at) WHERE end_status = 'sending';
