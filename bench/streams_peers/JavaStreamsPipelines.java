// The two benchmark pipelines in Java Kafka Streams 4.4 (built and run by bench/streams.py).
//
// count: page views counted per user in 1-minute tumbling event-time windows (grace 0), updates forwarded on
//        commit through the record cache, written as "<window start ms>:<count>" (as strom's pipeline does).
// join:  page views joined with the users KTable (inner stream-table join), written as "<page>|<user row>".
// Arguments as the Python peers': --bootstrap --pipeline --group --state-dir --views --users --output.
// Runs until SIGTERM, then closes cleanly (commits) from the shutdown hook.

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

public final class JavaStreamsPipelines {
    public static void main(String[] argv) throws InterruptedException {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        Consumed<String, String> strings = Consumed.with(Serdes.String(), Serdes.String());
        Produced<String, String> output = Produced.with(Serdes.String(), Serdes.String());
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> views = builder.stream(args.get("views"), strings);
        if (args.get("pipeline").equals("count")) {
            views.groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ZERO))
                .count()
                .toStream()
                .map((windowed, count) -> KeyValue.pair(windowed.key(), windowed.window().start() + ":" + count))
                .to(args.get("output"), output);
        } else {
            KTable<String, String> users = builder.table(args.get("users"), strings);
            views.join(users, (view, user) -> view + "|" + user).to(args.get("output"), output);
        }
        Properties config = new Properties();
        config.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("group"));
        config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        config.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        KafkaStreams streams = new KafkaStreams(builder.build(), config);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(error -> {
            error.printStackTrace();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        if (streams.state() == KafkaStreams.State.ERROR) {
            System.exit(1);
        }
    }
}
