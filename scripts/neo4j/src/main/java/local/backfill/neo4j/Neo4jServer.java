package local.backfill.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

/**
 * A Docker-free Neo4j 5.26 Community server for local development and CI: the embedded
 * database with its Bolt connector switched on. Started and stopped by scripts/services.sh.
 *
 * <p>Configuration (command-line option wins over environment variable, which wins over the
 * default):
 *
 * <ul>
 *   <li>{@code --home DIR} / {@code NEO4J_HOME_DIR}: store and logs ({@code .local/neo4j})
 *   <li>{@code --host HOST} / {@code NEO4J_BOLT_HOST}: Bolt listen host ({@code 127.0.0.1})
 *   <li>{@code --port PORT} / {@code NEO4J_BOLT_PORT}: Bolt listen port ({@code 7687})
 *   <li>{@code --conf FILE} / {@code NEO4J_CONF_FILE}: neo4j.conf-style settings file (optional)
 *   <li>{@code --auth true|false} / {@code NEO4J_AUTH_ENABLED}: authentication ({@code false})
 *   <li>{@code NEO4J_PASSWORD}: with authentication on, the password set for user {@code neo4j}
 * </ul>
 *
 * <p>Prints {@code NEO4J READY bolt://HOST:PORT} on standard output once Bolt accepts
 * connections, then runs until it gets SIGTERM/SIGINT, when it shuts the database down cleanly.
 */
public final class Neo4jServer {

    private Neo4jServer() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> env = System.getenv();
        String home = env.getOrDefault("NEO4J_HOME_DIR", ".local/neo4j");
        String host = env.getOrDefault("NEO4J_BOLT_HOST", "127.0.0.1");
        String port = env.getOrDefault("NEO4J_BOLT_PORT", "7687");
        String conf = env.getOrDefault("NEO4J_CONF_FILE", "");
        String auth = env.getOrDefault("NEO4J_AUTH_ENABLED", "false");
        String password = env.getOrDefault("NEO4J_PASSWORD", "");

        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + arg);
            }
            String value = args[++i];
            switch (arg) {
                case "--home" -> home = value;
                case "--host" -> host = value;
                case "--port" -> port = value;
                case "--conf" -> conf = value;
                case "--auth" -> auth = value;
                default -> usage("unknown option " + arg);
            }
        }

        boolean authEnabled = parseBool(auth);
        if (authEnabled && !password.isEmpty() && password.length() < 8) {
            // Neo4j's default dbms.security.auth_minimum_password_length
            usage("NEO4J_PASSWORD must have at least 8 characters");
        }
        int boltPort;
        try {
            boltPort = Integer.parseInt(port.trim());
        } catch (NumberFormatException e) {
            usage("bad port " + port);
            return;
        }

        Path homeDir = Path.of(home).toAbsolutePath().normalize();
        Files.createDirectories(homeDir);

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(homeDir);
        if (!conf.isBlank()) {
            Path confFile = Path.of(conf).toAbsolutePath().normalize();
            if (!Files.isReadable(confFile)) {
                usage("config file not readable: " + confFile);
            }
            builder.loadPropertiesFromFile(confFile);
        }
        // The settings below always win over the file: they are what the script relies on.
        builder.setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, boltPort))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(host, boltPort))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, authEnabled);

        long started = System.nanoTime();
        DatabaseManagementService service;
        try {
            service = builder.build();
        } catch (RuntimeException e) {
            // Non-daemon threads may already run: exit explicitly so the caller sees a dead JVM.
            System.err.println("NEO4J FAILED to start: " + e);
            e.printStackTrace();
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("NEO4J STOPPING");
            System.out.flush();
            try {
                service.shutdown();
            } catch (RuntimeException e) {
                e.printStackTrace();
            } finally {
                System.out.println("NEO4J STOPPED");
                System.out.flush();
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        if (authEnabled && !password.isEmpty()) {
            try {
                setPassword(service, password);
            } catch (RuntimeException e) {
                // Exit rather than leave a server running whose password is not the one asked for.
                System.err.println("NEO4J FAILED to set the password of user neo4j: " + e.getMessage());
                e.printStackTrace();
                System.exit(1);  // runs the shutdown hook
            }
        }

        long ms = Duration.ofNanos(System.nanoTime() - started).toMillis();
        System.out.println("NEO4J READY bolt://" + host + ":" + boltPort
                + " (auth " + (authEnabled ? "on" : "off") + ", home " + homeDir + ", "
                + ms + " ms)");
        System.out.flush();

        stopped.await();
    }

    /** Sets the password of the built-in user {@code neo4j}, without a forced change. */
    private static void setPassword(DatabaseManagementService service, String password) {
        GraphDatabaseService system = service.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PLAINTEXT PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
            System.out.println("NEO4J password of user neo4j set");
        } catch (RuntimeException e) {
            // Setting the current password again is refused ("Old password and new password
            // cannot be the same"): the password is then already what was asked for.
            String message = String.valueOf(e.getMessage());
            if (message.contains("cannot be the same")) {
                system.executeTransactionally("ALTER USER neo4j SET PASSWORD CHANGE NOT REQUIRED");
                System.out.println("NEO4J password of user neo4j unchanged");
            } else {
                throw e;
            }
        }
    }

    private static boolean parseBool(String value) {
        return switch (value.trim().toLowerCase()) {
            case "1", "true", "yes", "on" -> true;
            case "0", "false", "no", "off", "" -> false;
            default -> {
                usage("bad boolean " + value);
                yield false;
            }
        };
    }

    private static void usage(String problem) {
        System.err.println("Neo4jServer: " + problem);
        System.err.println("usage: Neo4jServer [--home DIR] [--host HOST] [--port PORT]"
                + " [--conf FILE] [--auth true|false]");
        System.exit(2);
    }
}
