// struct fanotify_response and its audit-rule record, byte by byte.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { encodeResponse, RESPONSE_MAX_LEN, responseWord } from '../../src/kernel/response';

describe('unit: permission response', () => {
  it('composes the response word from the decision and its extras', () => {
    expect(responseWord(true)).to.equal(K.FAN_ALLOW);
    expect(responseWord(false)).to.equal(K.FAN_DENY);
    // FAN_DENY_ERRNO(EPERM): the errno in the top byte, for a DENY only.
    expect(responseWord(false, { errno: 1 })).to.equal((K.FAN_DENY | (1 << 24)) >>> 0);
    expect(responseWord(true, { errno: 1 })).to.equal(K.FAN_ALLOW);
    expect(responseWord(false, { errno: 0xf5 })).to.equal((K.FAN_DENY | (0xf5 << 24)) >>> 0);
    expect(responseWord(true, { audit: true })).to.equal(K.FAN_ALLOW | K.FAN_AUDIT);
    expect(responseWord(true, { audit: true, auditRule: 7 })).to.equal(K.FAN_ALLOW | K.FAN_AUDIT | K.FAN_INFO);
    expect(responseWord(true, { auditRule: 7 })).to.equal(K.FAN_ALLOW);
  });

  it('lays out fd and response, and the audit rule record only with FAN_INFO', () => {
    const b = Buffer.alloc(RESPONSE_MAX_LEN, 0xee);
    expect(encodeResponse(b, 9, K.FAN_DENY)).to.equal(8);
    expect([...b.subarray(0, 8)]).to.deep.equal([9, 0, 0, 0, 2, 0, 0, 0]);
    const word = responseWord(false, { errno: 1, audit: true, auditRule: 0x01020304 });
    expect(encodeResponse(b, -1, word, 0x01020304)).to.equal(24);
    expect(b.readInt32LE(0)).to.equal(-1);
    expect(b.readUInt32LE(4)).to.equal(word);
    // header {type 1, pad, len 16}, rule number, subj_trust and obj_trust UNKNOWN (2).
    expect([...b.subarray(8, 24)]).to.deep.equal([1, 0, 16, 0, 4, 3, 2, 1, 2, 0, 0, 0, 2, 0, 0, 0]);
  });
});
