"""graphinator: consumes page batches and MERGEs nodes and relationships into Neo4j."""
