package statefold.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

import statefold.schema.Event;
import statefold.schema.MemoryDelete;
import statefold.schema.MemorySet;
import statefold.schema.Message;
import statefold.schema.Payload;
import statefold.schema.InferenceReceipt;
import statefold.schema.SessionOpened;
import statefold.schema.Summary;

/**
 * The work closest to statefold's fold (engine/fold/fold.cc, Folder::apply), written against the Processor API:
 * per record, decode the FlatBuffers event (classes generated from schemas/events.fbs), dedupe by event id, check
 * expected_version and expected_previous_event_id, closed and opened, then either write a refusal record or
 * accept: next version, SHA-256 of the event bytes, SHA-256 chain link, history entry, dedupe entry, the payload's
 * effect on the session header (memory entries in their own store) and a checkpoint every 64 versions.
 *
 * Five persistent RocksDB stores, each with its changelog topic and Kafka Streams' record cache in front. Keys are
 * session id, NUL, then the rest, as in statefold's store; values are this peer's own compact encoding, not
 * statefold's FlatBuffers tables (see docs/performance.md for what differs).
 */
final class FoldProcessor implements Processor<byte[], byte[], Void, Void> {
  static final int CHECKPOINT_INTERVAL = 64;  // statefold's fold::kCheckpointInterval

  static final String HEADERS = "headers";
  static final String IDS = "ids";
  static final String HISTORY = "history";
  static final String REFUSALS = "refusals";
  static final String CHECKPOINTS = "checkpoints";
  static final String MEMORY = "memory";

  /** Figures shared with the main thread. The one stream thread writes them. */
  static final class Counters {
    final long target;
    final CountDownLatch allProcessed = new CountDownLatch(1);
    volatile long processed;
    volatile long firstNanos;
    volatile long lastNanos;
    volatile long accepted;
    volatile long duplicates;
    volatile long rejected;

    Counters(long target) { this.target = target; }

    void count() {
      long now = System.nanoTime();
      if (processed == 0) firstNanos = now;
      ++processed;
      if (processed == target) {
        lastNanos = now;
        allProcessed.countDown();
      }
    }
  }

  static Topology topology(String topic, Counters counters) {
    Topology t = new Topology();
    t.addSource("events", topic);
    t.addProcessor("fold", () -> new FoldProcessor(counters), "events");
    for (String name : new String[] {HEADERS, IDS, HISTORY, REFUSALS, CHECKPOINTS, MEMORY}) {
      StoreBuilder<KeyValueStore<Bytes, byte[]>> b =
          Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(name), Serdes.Bytes(), Serdes.ByteArray())
              .withCachingEnabled()
              .withLoggingEnabled(java.util.Map.of());
      t.addStateStore(b, "fold");
    }
    return t;
  }

  private final Counters counters;
  private ProcessorContext<Void, Void> context;
  private KeyValueStore<Bytes, byte[]> headers;
  private KeyValueStore<Bytes, byte[]> ids;
  private KeyValueStore<Bytes, byte[]> history;
  private KeyValueStore<Bytes, byte[]> refusals;
  private KeyValueStore<Bytes, byte[]> checkpoints;
  private KeyValueStore<Bytes, byte[]> memory;
  private final MessageDigest sha256;  // one instance per task: no provider lookup per hash
  private final Event event = new Event();

  FoldProcessor(Counters counters) {
    this.counters = counters;
    try {
      sha256 = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void init(ProcessorContext<Void, Void> context) {
    this.context = context;
    headers = context.getStateStore(HEADERS);
    ids = context.getStateStore(IDS);
    history = context.getStateStore(HISTORY);
    refusals = context.getStateStore(REFUSALS);
    checkpoints = context.getStateStore(CHECKPOINTS);
    memory = context.getStateStore(MEMORY);
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    fold(record);
    counters.count();
  }

  private void fold(Record<byte[], byte[]> record) {
    final byte[] bytes = record.value();
    final byte[] sid = record.key();
    Event.getRootAsEvent(ByteBuffer.wrap(bytes), event);
    final String eventId = event.eventId();
    final Bytes headerKey = Bytes.wrap(sid);
    final byte[] stored = headers.get(headerKey);
    final Header h = stored == null ? new Header() : Header.decode(stored);
    final RecordMetadata where = context.recordMetadata().orElseThrow();

    // Duplicates first, as in statefold: a re-sent event that carried an expected version is still the same event.
    final Bytes idKey = key(sid, eventId.getBytes(StandardCharsets.UTF_8));
    final byte[] seen = ids.get(idKey);
    if (seen != null) {
      refuse(sid, h, headerKey, where, eventId, true, ByteBuffer.wrap(seen).getLong(),
             "event id already accepted at version " + ByteBuffer.wrap(seen).getLong());
      return;
    }
    final byte type = event.payloadType();
    String reason = null;
    final String expectedPrevious = event.expectedPreviousEventId();
    if (event.hasExpectedVersion() && event.expectedVersion() != h.version) {
      reason = "expected version " + event.expectedVersion() + ", session is at version " + h.version;
    } else if (expectedPrevious != null && !expectedPrevious.equalsIgnoreCase(h.lastEventId)) {
      reason = "expected the previous event to be " + expectedPrevious + ", the session's last event is "
               + (h.lastEventId.isEmpty() ? "none" : h.lastEventId);
    } else if (h.erased) {
      reason = "session is erased";
    } else if (h.closed && type != Payload.ErasureRequest) {
      reason = "session is closed";
    } else if (type == Payload.SessionOpened && h.opened) {
      reason = "session already opened";
    } else if (type == Payload.Summary) {
      Summary s = (Summary) event.payload(new Summary());
      if (s.throughVersion() > h.version) {
        reason = "summary.through_version " + s.throughVersion() + " is beyond the session's version " + h.version;
      }
    }
    if (reason != null) {
      refuse(sid, h, headerKey, where, eventId, false, 0, reason);
      return;
    }

    // Accepted: next version, chain link, history entry, dedupe entry, then the payload's own effect.
    final long version = ++h.version;
    final byte[] eventDigest = sha256.digest(bytes);
    sha256.update(h.chain);
    sha256.update(eventDigest);
    h.chain = sha256.digest();

    ByteBuffer entry = ByteBuffer.allocate(8 + 4 + 8 + 8 + 32 + 1 + 8 + 8 + 4 + bytes.length);
    entry.putLong(version).putInt(where.partition()).putLong(where.offset()).putLong(record.timestamp())
        .put(h.chain).put(type).putLong(h.duplicates).putLong(h.rejections).putInt(bytes.length).put(bytes);
    history.put(key(sid, be64(version)), entry.array());
    ids.put(idKey, be64(version));

    h.lastEventId = eventId;
    final long at = event.occurredAtUs();
    if (version == 1) h.firstOccurredAtUs = at;
    h.lastOccurredAtUs = at;
    applyPayload(sid, h, type, version);
    if (version % CHECKPOINT_INTERVAL == 0) writeCheckpoint(sid, h, version);
    headers.put(headerKey, h.encode());
    ++counters.accepted;
  }

  private void refuse(byte[] sid, Header h, Bytes headerKey, RecordMetadata where, String eventId,
                      boolean duplicate, long duplicateOf, String reason) {
    if (duplicate) {
      ++h.duplicates;
      ++counters.duplicates;
    } else {
      ++h.rejections;
      ++counters.rejected;
    }
    ByteArrayOutputStream buf = new ByteArrayOutputStream(96 + reason.length());
    try (DataOutputStream out = new DataOutputStream(buf)) {
      out.writeByte(duplicate ? 1 : 2);
      out.writeUTF(eventId);
      out.writeInt(where.partition());
      out.writeLong(where.offset());
      out.writeLong(event.hasExpectedVersion() ? event.expectedVersion() : 0);
      out.writeLong(h.version);
      out.writeLong(duplicateOf);
      out.writeUTF(reason);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    refusals.put(key(sid, be64(h.duplicates + h.rejections)), buf.toByteArray());
    headers.put(headerKey, h.encode());
  }

  private void applyPayload(byte[] sid, Header h, byte type, long version) {
    switch (type) {
      case Payload.SessionOpened -> {
        SessionOpened p = (SessionOpened) event.payload(new SessionOpened());
        h.opened = true;
        h.model = orEmpty(p.model());
        h.systemPrompt = orEmpty(p.systemPrompt());
      }
      case Payload.Message -> {
        Message p = (Message) event.payload(new Message());
        ++h.messages;
        h.toolCalls += p.toolCallsLength();
      }
      case Payload.MemorySet -> {
        MemorySet p = (MemorySet) event.payload(new MemorySet());
        Bytes k = key(sid, p.label().getBytes(StandardCharsets.UTF_8));
        byte[] old = memory.get(k);
        if (old != null) {
          xorInto(h.memoryDigest, memoryTerm(p.label(), old));
        } else {
          ++h.memoryEntries;
        }
        byte[] value = memoryValue(orEmpty(p.value()), p.pinned(), version);
        xorInto(h.memoryDigest, memoryTerm(p.label(), value));
        memory.put(k, value);
      }
      case Payload.MemoryDelete -> {
        MemoryDelete p = (MemoryDelete) event.payload(new MemoryDelete());
        Bytes k = key(sid, p.label().getBytes(StandardCharsets.UTF_8));
        byte[] old = memory.get(k);
        if (old != null) {
          xorInto(h.memoryDigest, memoryTerm(p.label(), old));
          --h.memoryEntries;
          memory.delete(k);
        }
      }
      case Payload.Summary -> {
        Summary p = (Summary) event.payload(new Summary());
        h.summary = orEmpty(p.text());
        h.summaryThrough = p.throughVersion();
      }
      case Payload.InferenceReceipt -> {
        InferenceReceipt p = (InferenceReceipt) event.payload(new InferenceReceipt());
        ++h.receipts;
        if (p.usage() != null) {
          h.inputTokens += p.usage().inputTokens();
          h.outputTokens += p.usage().outputTokens();
          h.cachedTokens += p.usage().cachedTokens();
        }
      }
      case Payload.SessionClosed -> h.closed = true;
      case Payload.ErasureRequest -> h.erased = true;  // no content redaction here (docs/performance.md)
      case Payload.Custom -> ++h.customEvents;
      default -> ++h.unknownEvents;
    }
  }

  // The header and the session's memory entries at this version, as statefold's SessionCheckpoint holds them.
  private void writeCheckpoint(byte[] sid, Header h, long version) {
    ByteArrayOutputStream buf = new ByteArrayOutputStream(512);
    try (DataOutputStream out = new DataOutputStream(buf)) {
      out.writeLong(version);
      byte[] header = h.encode();
      out.writeInt(header.length);
      out.write(header);
      byte[] prefix = key(sid, new byte[0]).get();
      try (KeyValueIterator<Bytes, byte[]> it = memory.prefixScan(prefix, new ByteArraySerializer())) {
        while (it.hasNext()) {
          KeyValue<Bytes, byte[]> kv = it.next();
          byte[] k = kv.key.get();
          out.writeInt(k.length - prefix.length);
          out.write(k, prefix.length, k.length - prefix.length);
          out.writeInt(kv.value.length);
          out.write(kv.value);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    checkpoints.put(key(sid, be64(version)), buf.toByteArray());
  }

  private byte[] memoryTerm(String label, byte[] storedValue) {
    sha256.update(label.getBytes(StandardCharsets.UTF_8));
    sha256.update(storedValue, 0, storedValue.length - 8);  // value and pinned, not the version
    return sha256.digest();
  }

  private static byte[] memoryValue(String value, boolean pinned, long version) {
    byte[] v = value.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(v.length + 1 + 8).put(v).put((byte) (pinned ? 1 : 0)).putLong(version).array();
  }

  private static void xorInto(byte[] acc, byte[] d) {
    for (int i = 0; i < acc.length; ++i) acc[i] ^= d[i];
  }

  private static String orEmpty(String s) { return s == null ? "" : s; }

  static Bytes key(byte[] sid, byte[] rest) {
    byte[] k = Arrays.copyOf(sid, sid.length + 1 + rest.length);
    System.arraycopy(rest, 0, k, sid.length + 1, rest.length);  // k[sid.length] stays 0: the separator
    return Bytes.wrap(k);
  }

  static byte[] be64(long v) { return ByteBuffer.allocate(8).putLong(v).array(); }

  /** The session header: this peer's counterpart of statefold's state::SessionHeader. */
  static final class Header {
    long version;
    byte[] chain = new byte[32];
    String lastEventId = "";
    long duplicates;
    long rejections;
    long firstOccurredAtUs;
    long lastOccurredAtUs;
    boolean opened;
    boolean closed;
    boolean erased;
    String model = "";
    String systemPrompt = "";
    String summary = "";
    long summaryThrough;
    long messages;
    long toolCalls;
    long receipts;
    long inputTokens;
    long outputTokens;
    long cachedTokens;
    long memoryEntries;
    byte[] memoryDigest = new byte[32];
    long customEvents;
    long unknownEvents;

    byte[] encode() {
      ByteArrayOutputStream buf = new ByteArrayOutputStream(256 + systemPrompt.length() + summary.length());
      try (DataOutputStream out = new DataOutputStream(buf)) {
        out.writeLong(version);
        out.write(chain);
        out.writeUTF(lastEventId);
        out.writeLong(duplicates);
        out.writeLong(rejections);
        out.writeLong(firstOccurredAtUs);
        out.writeLong(lastOccurredAtUs);
        out.writeByte((opened ? 1 : 0) | (closed ? 2 : 0) | (erased ? 4 : 0));
        writeString(out, model);
        writeString(out, systemPrompt);
        writeString(out, summary);
        out.writeLong(summaryThrough);
        out.writeLong(messages);
        out.writeLong(toolCalls);
        out.writeLong(receipts);
        out.writeLong(inputTokens);
        out.writeLong(outputTokens);
        out.writeLong(cachedTokens);
        out.writeLong(memoryEntries);
        out.write(memoryDigest);
        out.writeLong(customEvents);
        out.writeLong(unknownEvents);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.toByteArray();
    }

    static Header decode(byte[] bytes) {
      Header h = new Header();
      try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
        h.version = in.readLong();
        in.readFully(h.chain);
        h.lastEventId = in.readUTF();
        h.duplicates = in.readLong();
        h.rejections = in.readLong();
        h.firstOccurredAtUs = in.readLong();
        h.lastOccurredAtUs = in.readLong();
        int flags = in.readByte();
        h.opened = (flags & 1) != 0;
        h.closed = (flags & 2) != 0;
        h.erased = (flags & 4) != 0;
        h.model = readString(in);
        h.systemPrompt = readString(in);
        h.summary = readString(in);
        h.summaryThrough = in.readLong();
        h.messages = in.readLong();
        h.toolCalls = in.readLong();
        h.receipts = in.readLong();
        h.inputTokens = in.readLong();
        h.outputTokens = in.readLong();
        h.cachedTokens = in.readLong();
        h.memoryEntries = in.readLong();
        in.readFully(h.memoryDigest);
        h.customEvents = in.readLong();
        h.unknownEvents = in.readLong();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return h;
    }

    // Length-prefixed UTF-8 without writeUTF's 64 KB limit (system prompts and summaries can be long).
    private static void writeString(DataOutputStream out, String s) throws IOException {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      out.writeInt(b.length);
      out.write(b);
    }

    private static String readString(DataInputStream in) throws IOException {
      byte[] b = new byte[in.readInt()];
      in.readFully(b);
      return new String(b, StandardCharsets.UTF_8);
    }
  }
}
